//! Feature identifiers and the encodings of the features nvplan uses (NVMe 1.4 §5.21.1).

/// Feature Identifiers (Figure 271).
pub mod fid {
    /// Arbitration.
    pub const ARBITRATION: u8 = 0x01;
    /// Power Management.
    pub const POWER_MANAGEMENT: u8 = 0x02;
    /// LBA Range Type.
    pub const LBA_RANGE_TYPE: u8 = 0x03;
    /// Temperature Threshold.
    pub const TEMPERATURE_THRESHOLD: u8 = 0x04;
    /// Error Recovery.
    pub const ERROR_RECOVERY: u8 = 0x05;
    /// Volatile Write Cache.
    pub const VOLATILE_WRITE_CACHE: u8 = 0x06;
    /// Number of Queues.
    pub const NUMBER_OF_QUEUES: u8 = 0x07;
    /// Interrupt Coalescing.
    pub const INTERRUPT_COALESCING: u8 = 0x08;
    /// Interrupt Vector Configuration.
    pub const INTERRUPT_VECTOR_CONFIG: u8 = 0x09;
    /// Write Atomicity Normal.
    pub const WRITE_ATOMICITY: u8 = 0x0A;
    /// Asynchronous Event Configuration.
    pub const ASYNC_EVENT_CONFIG: u8 = 0x0B;
    /// Autonomous Power State Transition.
    pub const AUTONOMOUS_POWER_STATE: u8 = 0x0C;
    /// Host Memory Buffer.
    pub const HOST_MEMORY_BUFFER: u8 = 0x0D;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 0x0E;
    /// Keep Alive Timer.
    pub const KEEP_ALIVE_TIMER: u8 = 0x0F;

    /// The specification's name of a feature.
    pub fn name(id: u8) -> &'static str {
        match id {
            ARBITRATION => "Arbitration",
            POWER_MANAGEMENT => "Power Management",
            LBA_RANGE_TYPE => "LBA Range Type",
            TEMPERATURE_THRESHOLD => "Temperature Threshold",
            ERROR_RECOVERY => "Error Recovery",
            VOLATILE_WRITE_CACHE => "Volatile Write Cache",
            NUMBER_OF_QUEUES => "Number of Queues",
            INTERRUPT_COALESCING => "Interrupt Coalescing",
            INTERRUPT_VECTOR_CONFIG => "Interrupt Vector Configuration",
            WRITE_ATOMICITY => "Write Atomicity Normal",
            ASYNC_EVENT_CONFIG => "Asynchronous Event Configuration",
            AUTONOMOUS_POWER_STATE => "Autonomous Power State Transition",
            HOST_MEMORY_BUFFER => "Host Memory Buffer",
            TIMESTAMP => "Timestamp",
            KEEP_ALIVE_TIMER => "Keep Alive Timer",
            0xC0..=0xFF => "Vendor Specific",
            _ => "Reserved",
        }
    }
}

/// Select field of Get Features CDW10 bits 10:8 (Figure 269).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Select {
    /// 000b: current value.
    Current,
    /// 001b: default value.
    Default,
    /// 010b: saved value.
    Saved,
    /// 011b: supported capabilities.
    Capabilities,
    /// Reserved.
    Reserved(u8),
}

impl Select {
    /// Decodes CDW10 of a Get Features command.
    pub const fn from_cdw10(cdw10: u32) -> Select {
        match (cdw10 >> 8) & 7 {
            0 => Select::Current,
            1 => Select::Default,
            2 => Select::Saved,
            3 => Select::Capabilities,
            r => Select::Reserved(r as u8),
        }
    }
}

/// Number of Queues (FID 07h) dword: NSQR in bits 15:0, NCQR in bits 31:16, both 0's based.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NumberOfQueues {
    /// I/O submission queues, 1-based.
    pub sq: u32,
    /// I/O completion queues, 1-based.
    pub cq: u32,
}

impl NumberOfQueues {
    /// Decodes CDW11 of Set Features or DW0 of its completion.
    pub const fn from_dword(v: u32) -> Self {
        NumberOfQueues { sq: (v & 0xffff) + 1, cq: (v >> 16) + 1 }
    }
    /// Encodes as the 0's-based dword.
    pub const fn to_dword(self) -> u32 {
        (self.sq.saturating_sub(1) & 0xffff) | (self.cq.saturating_sub(1) & 0xffff) << 16
    }
}

/// Arbitration (FID 01h) dword: AB[2:0], LPW[15:8], MPW[23:16], HPW[31:24].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Arbitration {
    /// Arbitration Burst: 2^AB commands per turn (7 = no limit).
    pub burst: u8,
    /// Low Priority Weight, 0's based.
    pub low: u8,
    /// Medium Priority Weight, 0's based.
    pub medium: u8,
    /// High Priority Weight, 0's based.
    pub high: u8,
}

impl Arbitration {
    /// Decodes the dword.
    pub const fn from_dword(v: u32) -> Self {
        Arbitration { burst: (v & 7) as u8, low: (v >> 8) as u8, medium: (v >> 16) as u8, high: (v >> 24) as u8 }
    }
    /// Encodes the dword.
    pub const fn to_dword(self) -> u32 {
        (self.burst as u32 & 7) | (self.low as u32) << 8 | (self.medium as u32) << 16 | (self.high as u32) << 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_of_queues_is_zeros_based() {
        let n = NumberOfQueues::from_dword(0x0003_0007);
        assert_eq!(n, NumberOfQueues { sq: 8, cq: 4 });
        assert_eq!(n.to_dword(), 0x0003_0007);
    }

    #[test]
    fn arbitration_dword_round_trips() {
        let a = Arbitration { burst: 3, low: 1, medium: 2, high: 4 };
        assert_eq!(a.to_dword(), 0x0402_0103);
        assert_eq!(Arbitration::from_dword(a.to_dword()), a);
        assert_eq!(Select::from_cdw10(0x0306), Select::Capabilities);
    }
}
