//! {{engine-name}}: a PolySwarm microengine by {{author_org}}.
//!
//! Whose room is whose:
//!
//! * [`scanner`] and [`bid`] are yours: the scan logic, its backend, and how
//!   much to stake on each verdict. Search for `CUSTOMIZE_HERE`.
//! * [`runtime`] is the plumbing you normally don't touch: the PolySwarm
//!   webhook protocol, artifact download, verdict delivery, configuration,
//!   logging and the command line.
{%- if backend == "clamav" %}
//! * [`clamd`] is a small async client for the ClamAV daemon, used by the
//!   scanner.
{%- endif %}

pub mod bid;
{%- if backend == "clamav" %}
pub mod clamd;
{%- endif %}
pub mod runtime;
pub mod scanner;
