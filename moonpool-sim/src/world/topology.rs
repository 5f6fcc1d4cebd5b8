//! Who is where in a world: the names, groups, IPs and localities of its processes and
//! workloads, so code can address a process by name.

use std::net::{IpAddr, SocketAddr};

use crate::kernel::process::Locality;

/// One process or workload instance in the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// Instance name, e.g. `replica-1`.
    pub name: String,
    /// The group it was declared in, e.g. `replica`.
    pub group: String,
    /// Its IP.
    pub ip: IpAddr,
    /// Where it runs.
    pub locality: Locality,
}

/// Who is where in a simulation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Topology {
    /// Server processes, in declaration order.
    pub processes: Vec<Member>,
    /// Workload instances, in declaration order.
    pub workloads: Vec<Member>,
}

impl Member {
    /// A member named `name`, of `group`, at `ip`, in `locality`.
    pub fn new(name: &str, group: &str, ip: IpAddr, locality: Locality) -> Self {
        Self {
            name: name.to_string(),
            group: group.to_string(),
            ip,
            locality,
        }
    }
}

impl Topology {
    /// A topology of these server processes and workload instances, each in declaration order.
    pub fn new(processes: Vec<Member>, workloads: Vec<Member>) -> Self {
        Self {
            processes,
            workloads,
        }
    }

    /// IPs of the processes of `group`, in order.
    pub fn ips_of(&self, group: &str) -> Vec<IpAddr> {
        self.processes
            .iter()
            .filter(|m| m.group == group)
            .map(|m| m.ip)
            .collect()
    }

    /// The process or workload named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.processes
            .iter()
            .chain(self.workloads.iter())
            .find(|m| m.name == name)
    }

    /// The IP of the process or workload named `name`: address processes by name rather than
    /// by their position in declaration order.
    pub fn ip_of(&self, name: &str) -> Option<IpAddr> {
        self.member(name).map(|m| m.ip)
    }

    /// `ip:port` of the process or workload named `name`, as the network providers take it.
    pub fn address_of(&self, name: &str, port: u16) -> Option<String> {
        self.ip_of(name)
            .map(|ip| SocketAddr::new(ip, port).to_string())
    }

    /// The index of `name` among the members of its group (0 for the first), if it is a member.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let member = self.member(name)?;
        let list = if self.processes.iter().any(|m| m.name == name) {
            &self.processes
        } else {
            &self.workloads
        };
        list.iter()
            .filter(|m| m.group == member.group)
            .position(|m| m.name == name)
    }
}
