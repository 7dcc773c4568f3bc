//! The simulators on the wire, with a plain HTTP client: what a vendor's own client would see.

mod alm;
mod azure_devops;
mod cli;
mod fidelity;
mod servicenow;
