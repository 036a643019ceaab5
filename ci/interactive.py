"""Drive `cargo generate` through a pseudo-terminal, as a person would.

usage: interactive.py ENGINE_NAME -- COMMAND...

Waits for the engine-name prompt, types ENGINE_NAME, and answers any other
prompt with Enter (its default). Fails if no engine-name prompt appears.
"""

import os
import pty
import re
import select
import sys
import time


def main() -> int:
    separator = sys.argv.index("--")
    engine_name = sys.argv[1]
    command = sys.argv[separator + 1 :]

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)

    transcript = b""
    asked = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        transcript += chunk
        text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", transcript).decode(errors="replace")
        if not asked and "Engine name" in text:
            time.sleep(0.2)
            os.write(fd, engine_name.encode() + b"\r")
            asked = True
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(transcript.decode(errors="replace"))
    if not asked:
        print("\nno engine-name prompt seen")
        return 1
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
