//! Log pages (NVMe 1.4 §5.14.1) and asynchronous event encodings (§5.2).

use super::pod::{self, Pod};

/// Log Page Identifiers (Figure 191).
pub mod lid {
    /// Error Information.
    pub const ERROR_INFORMATION: u8 = 0x01;
    /// SMART / Health Information.
    pub const SMART_HEALTH: u8 = 0x02;
    /// Firmware Slot Information.
    pub const FIRMWARE_SLOT: u8 = 0x03;
    /// Changed Namespace List.
    pub const CHANGED_NAMESPACES: u8 = 0x04;
    /// Commands Supported and Effects.
    pub const COMMANDS_EFFECTS: u8 = 0x05;
    /// Device Self-test.
    pub const SELF_TEST: u8 = 0x06;
    /// Sanitize Status.
    pub const SANITIZE_STATUS: u8 = 0x81;
}

/// The fields of Get Log Page CDW10-13 (Figure 190).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GetLogPage {
    /// Log Page Identifier.
    pub lid: u8,
    /// Log Specific Field.
    pub lsp: u8,
    /// Retain Asynchronous Event.
    pub rae: bool,
    /// Number of dwords to transfer, 1-based.
    pub dwords: u32,
    /// Log Page Offset in bytes.
    pub offset: u64,
}

impl GetLogPage {
    /// Decodes CDW10 to CDW13.
    pub const fn from_cdws(cdw10: u32, cdw11: u32, cdw12: u32, cdw13: u32) -> Self {
        let numd = ((cdw11 & 0xffff) << 16) | (cdw10 >> 16);
        GetLogPage {
            lid: cdw10 as u8,
            lsp: ((cdw10 >> 8) & 0xf) as u8,
            rae: cdw10 & (1 << 15) != 0,
            dwords: numd + 1,
            offset: cdw12 as u64 | (cdw13 as u64) << 32,
        }
    }
    /// Encodes CDW10 to CDW13 for `bytes` bytes (rounded up to whole dwords).
    pub const fn to_cdws(lid: u8, bytes: usize, rae: bool, offset: u64) -> [u32; 4] {
        let dw = bytes.div_ceil(4);
        let numd = if dw == 0 { 0 } else { (dw - 1) as u32 };
        [lid as u32 | (rae as u32) << 15 | (numd & 0xffff) << 16, numd >> 16, offset as u32, (offset >> 32) as u32]
    }
}

/// One Error Information log entry (64 bytes, Figure 195).
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct ErrorLogEntry {
    /// Error Count: unique, incrementing, never 0 for a valid entry.
    pub error_count: u64,
    /// Submission Queue ID of the failed command (FFFFh if not specific to a command).
    pub sqid: u16,
    /// Command ID of the failed command.
    pub cid: u16,
    /// Status Field in bits 15:1 and phase tag in bit 0, as in the completion.
    pub status: u16,
    /// Parameter Error Location: byte in bits 7:0, bit in bits 10:8 of the command.
    pub param_error_location: u16,
    /// First LBA that experienced the error.
    pub lba: u64,
    /// Namespace of the error.
    pub nsid: u32,
    /// Vendor Specific Information Available.
    pub vs_info: u8,
    /// Transport Type.
    pub trtype: u8,
    /// Reserved.
    pub rsvd30: [u8; 2],
    /// Command Specific Information.
    pub cs_info: u64,
    /// Transport Type Specific Information.
    pub trtype_info: u16,
    /// Reserved.
    pub rsvd42: [u8; 22],
}

const _: () = assert!(std::mem::size_of::<ErrorLogEntry>() == 64);
// SAFETY: `repr(C)` of naturally aligned integers and byte arrays; size asserted to be
// 64, the sum of the fields, so there is no padding.
unsafe impl Pod for ErrorLogEntry {}

/// SMART / Health Information log page (512 bytes, Figure 196), kept as bytes because the
/// temperature field at offset 1 is not naturally aligned.
#[derive(Clone, Copy)]
pub struct SmartLog {
    /// The raw page.
    pub raw: [u8; 512],
}

macro_rules! smart_u128 {
    ($($(#[$m:meta])* $get:ident, $set:ident @ $off:expr;)*) => {
        $(
            $(#[$m])*
            pub fn $get(&self) -> u128 {
                u128::from_le_bytes(self.raw[$off..$off + 16].try_into().expect("16 bytes"))
            }
            #[doc = concat!("Sets `", stringify!($get), "`.")]
            pub fn $set(&mut self, v: u128) {
                self.raw[$off..$off + 16].copy_from_slice(&v.to_le_bytes());
            }
        )*
    };
}

impl std::fmt::Debug for SmartLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartLog")
            .field("critical_warning", &self.critical_warning())
            .field("temperature_k", &self.temperature_k())
            .field("data_units_read", &self.data_units_read())
            .field("data_units_written", &self.data_units_written())
            .field("host_read_commands", &self.host_read_commands())
            .field("host_write_commands", &self.host_write_commands())
            .field("power_cycles", &self.power_cycles())
            .field("unsafe_shutdowns", &self.unsafe_shutdowns())
            .finish_non_exhaustive()
    }
}

impl SmartLog {
    /// All zero.
    pub fn zeroed() -> Self {
        SmartLog { raw: [0; 512] }
    }
    /// From the bytes of the page.
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut s = Self::zeroed();
        let n = b.len().min(512);
        s.raw[..n].copy_from_slice(&b[..n]);
        s
    }
    /// Critical Warning bits (byte 0).
    pub fn critical_warning(&self) -> u8 {
        self.raw[0]
    }
    /// Sets Critical Warning.
    pub fn set_critical_warning(&mut self, v: u8) {
        self.raw[0] = v;
    }
    /// Composite Temperature in Kelvin (bytes 1-2).
    pub fn temperature_k(&self) -> u16 {
        u16::from_le_bytes([self.raw[1], self.raw[2]])
    }
    /// Sets Composite Temperature.
    pub fn set_temperature_k(&mut self, k: u16) {
        self.raw[1..3].copy_from_slice(&k.to_le_bytes());
    }
    /// Available Spare, percent (byte 3).
    pub fn available_spare(&self) -> u8 {
        self.raw[3]
    }
    /// Sets Available Spare and its threshold (bytes 3 and 4).
    pub fn set_available_spare(&mut self, spare: u8, threshold: u8) {
        self.raw[3] = spare;
        self.raw[4] = threshold;
    }
    /// Percentage Used (byte 5).
    pub fn percentage_used(&self) -> u8 {
        self.raw[5]
    }
    smart_u128! {
        /// Data Units Read: thousands of 512-byte units, rounded up.
        data_units_read, set_data_units_read @ 32;
        /// Data Units Written: thousands of 512-byte units, rounded up.
        data_units_written, set_data_units_written @ 48;
        /// Host Read Commands.
        host_read_commands, set_host_read_commands @ 64;
        /// Host Write Commands.
        host_write_commands, set_host_write_commands @ 80;
        /// Controller Busy Time, minutes.
        controller_busy_time, set_controller_busy_time @ 96;
        /// Power Cycles.
        power_cycles, set_power_cycles @ 112;
        /// Power On Hours.
        power_on_hours, set_power_on_hours @ 128;
        /// Unsafe Shutdowns.
        unsafe_shutdowns, set_unsafe_shutdowns @ 144;
        /// Media and Data Integrity Errors.
        media_errors, set_media_errors @ 160;
        /// Number of Error Information Log Entries over the controller's life.
        error_log_entries, set_error_log_entries @ 176;
    }
}

/// Data units as SMART counts them: thousands of 512-byte units, rounded up (Figure 196).
pub const fn data_units(bytes_512: u128) -> u128 {
    bytes_512.div_ceil(1000)
}

/// Asynchronous event completion dword 0 (Figure 146): type in bits 2:0, information in
/// bits 15:8, associated log page in bits 23:16.
pub mod async_event {
    /// Error status event type.
    pub const TYPE_ERROR: u8 = 0;
    /// SMART / Health status event type.
    pub const TYPE_SMART: u8 = 1;
    /// Notice event type.
    pub const TYPE_NOTICE: u8 = 2;
    /// I/O Command Specific Status event type.
    pub const TYPE_IO_COMMAND_SPECIFIC: u8 = 6;
    /// I/O command specific information: Sanitize Operation Completed.
    pub const SANITIZE_COMPLETED: u8 = 0x01;
    /// Error information: write to an invalid doorbell register.
    pub const ERROR_INVALID_DOORBELL_REGISTER: u8 = 0x00;
    /// Error information: invalid doorbell write value.
    pub const ERROR_INVALID_DOORBELL_VALUE: u8 = 0x01;
    /// Error information: diagnostic failure.
    pub const ERROR_DIAGNOSTIC_FAILURE: u8 = 0x02;
    /// Error information: persistent internal error.
    pub const ERROR_PERSISTENT_INTERNAL: u8 = 0x03;
    /// Error information: transient internal error.
    pub const ERROR_TRANSIENT_INTERNAL: u8 = 0x04;

    /// Encodes completion dword 0 of an asynchronous event.
    pub const fn dword0(ty: u8, info: u8, log_page: u8) -> u32 {
        (ty as u32 & 7) | (info as u32) << 8 | (log_page as u32) << 16
    }
    /// Decodes completion dword 0 into (type, information, log page).
    pub const fn decode(dw0: u32) -> (u8, u8, u8) {
        ((dw0 & 7) as u8, (dw0 >> 8) as u8, (dw0 >> 16) as u8)
    }
}

impl ErrorLogEntry {
    /// The bytes of the entry.
    pub fn as_bytes(&self) -> &[u8] {
        pod::as_bytes(self)
    }
    /// From 64 bytes.
    pub fn from_bytes(b: &[u8]) -> Self {
        pod::from_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_doorbell_value_event_matches_pynvme_warning() {
        // PyNVMe3 warns "AER notification is triggered: 0x10100" for a tail beyond the SQ.
        let dw0 = async_event::dword0(async_event::TYPE_ERROR, async_event::ERROR_INVALID_DOORBELL_VALUE, lid::ERROR_INFORMATION);
        assert_eq!(dw0, 0x10100);
        assert_eq!(async_event::decode(dw0), (0, 1, 1));
    }

    #[test]
    fn get_log_page_dwords_round_trip() {
        let c = GetLogPage::to_cdws(lid::SMART_HEALTH, 512, true, 0x1_0000_0000);
        let g = GetLogPage::from_cdws(c[0], c[1], c[2], c[3]);
        assert_eq!(g.lid, 2);
        assert!(g.rae);
        assert_eq!(g.dwords, 128);
        assert_eq!(g.offset, 0x1_0000_0000);
        let big = GetLogPage::to_cdws(1, 4 << 20, false, 0);
        assert_eq!(GetLogPage::from_cdws(big[0], big[1], 0, 0).dwords, 1 << 20);
    }

    #[test]
    fn smart_counters_sit_at_spec_offsets() {
        let mut s = SmartLog::zeroed();
        s.set_data_units_written(0x0102);
        s.set_temperature_k(300);
        assert_eq!(s.raw[48], 2);
        assert_eq!(s.raw[49], 1);
        assert_eq!(s.raw[1..3], 300u16.to_le_bytes());
        assert_eq!(data_units(1), 1);
        assert_eq!(data_units(1000), 1);
        assert_eq!(data_units(1001), 2);
    }
}
