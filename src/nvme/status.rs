//! Completion status: Status Code Type, Status Code, CRD, More and DNR (NVMe 1.4 §4.6.1).

/// Status Code Type (§4.6.1.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum StatusCodeType {
    /// 0h: Generic Command Status.
    Generic,
    /// 1h: Command Specific Status.
    CommandSpecific,
    /// 2h: Media and Data Integrity Errors.
    MediaError,
    /// 3h: Path Related Status.
    Path,
    /// 7h: Vendor Specific.
    Vendor,
    /// 4h-6h: reserved.
    Reserved(u8),
}

impl StatusCodeType {
    /// Decodes the three-bit field.
    pub const fn from_bits(v: u8) -> Self {
        match v & 7 {
            0 => Self::Generic,
            1 => Self::CommandSpecific,
            2 => Self::MediaError,
            3 => Self::Path,
            7 => Self::Vendor,
            r => Self::Reserved(r),
        }
    }
}

/// The 15-bit Status Field of a completion: SC[7:0], SCT[10:8], CRD[12:11], M[13], DNR[14].
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Status(u16);

macro_rules! codes {
    ($($(#[$m:meta])* $name:ident = ($sct:expr, $sc:expr), $text:expr;)*) => {
        impl Status {
            $($(#[$m])* pub const $name: Status = Status::new($sct, $sc);)*
        }
        const NAMES: &[(u8, u8, &str)] = &[$(($sct, $sc, $text)),*];
    };
}

codes! {
    /// 00/00
    SUCCESS = (0, 0x00), "Successful Completion";
    /// 00/01
    INVALID_OPCODE = (0, 0x01), "Invalid Command Opcode";
    /// 00/02
    INVALID_FIELD = (0, 0x02), "Invalid Field in Command";
    /// 00/03
    CID_CONFLICT = (0, 0x03), "Command ID Conflict";
    /// 00/04
    DATA_TRANSFER_ERROR = (0, 0x04), "Data Transfer Error";
    /// 00/05
    ABORTED_POWER_LOSS = (0, 0x05), "Commands Aborted due to Power Loss Notification";
    /// 00/06
    INTERNAL_ERROR = (0, 0x06), "Internal Error";
    /// 00/07
    ABORT_REQUESTED = (0, 0x07), "Command Abort Requested";
    /// 00/08
    ABORTED_SQ_DELETION = (0, 0x08), "Command Aborted due to SQ Deletion";
    /// 00/09
    ABORTED_FAILED_FUSED = (0, 0x09), "Command Aborted due to Failed Fused Command";
    /// 00/0A
    ABORTED_MISSING_FUSED = (0, 0x0A), "Command Aborted due to Missing Fused Command";
    /// 00/0B
    INVALID_NAMESPACE = (0, 0x0B), "Invalid Namespace or Format";
    /// 00/0C
    COMMAND_SEQUENCE_ERROR = (0, 0x0C), "Command Sequence Error";
    /// 00/0D
    INVALID_SGL_SEGMENT = (0, 0x0D), "Invalid SGL Segment Descriptor";
    /// 00/0E
    INVALID_SGL_COUNT = (0, 0x0E), "Invalid Number of SGL Descriptors";
    /// 00/0F
    DATA_SGL_LENGTH_INVALID = (0, 0x0F), "Data SGL Length Invalid";
    /// 00/10
    METADATA_SGL_LENGTH_INVALID = (0, 0x10), "Metadata SGL Length Invalid";
    /// 00/11
    SGL_TYPE_INVALID = (0, 0x11), "SGL Descriptor Type Invalid";
    /// 00/12
    INVALID_CMB_USE = (0, 0x12), "Invalid Use of Controller Memory Buffer";
    /// 00/13
    INVALID_PRP_OFFSET = (0, 0x13), "PRP Offset Invalid";
    /// 00/14
    ATOMIC_WRITE_UNIT_EXCEEDED = (0, 0x14), "Atomic Write Unit Exceeded";
    /// 00/15
    OPERATION_DENIED = (0, 0x15), "Operation Denied";
    /// 00/16
    SGL_OFFSET_INVALID = (0, 0x16), "SGL Offset Invalid";
    /// 00/18
    HOST_ID_INCONSISTENT = (0, 0x18), "Host Identifier Inconsistent Format";
    /// 00/19
    KEEP_ALIVE_EXPIRED = (0, 0x19), "Keep Alive Timer Expired";
    /// 00/1A
    KEEP_ALIVE_INVALID = (0, 0x1A), "Keep Alive Timeout Invalid";
    /// 00/1B
    ABORTED_PREEMPT = (0, 0x1B), "Command Aborted due to Preempt and Abort";
    /// 00/1C
    SANITIZE_FAILED = (0, 0x1C), "Sanitize Failed";
    /// 00/1D
    SANITIZE_IN_PROGRESS = (0, 0x1D), "Sanitize In Progress";
    /// 00/1E
    SGL_GRANULARITY_INVALID = (0, 0x1E), "SGL Data Block Granularity Invalid";
    /// 00/1F
    NOT_SUPPORTED_FOR_CMB_QUEUE = (0, 0x1F), "Command Not Supported for Queue in CMB";
    /// 00/20
    NAMESPACE_WRITE_PROTECTED = (0, 0x20), "Namespace is Write Protected";
    /// 00/21
    COMMAND_INTERRUPTED = (0, 0x21), "Command Interrupted";
    /// 00/22
    TRANSIENT_TRANSPORT_ERROR = (0, 0x22), "Transient Transport Error";
    /// 00/80
    LBA_OUT_OF_RANGE = (0, 0x80), "LBA Out of Range";
    /// 00/81
    CAPACITY_EXCEEDED = (0, 0x81), "Capacity Exceeded";
    /// 00/82
    NAMESPACE_NOT_READY = (0, 0x82), "Namespace Not Ready";
    /// 00/83
    RESERVATION_CONFLICT = (0, 0x83), "Reservation Conflict";
    /// 00/84
    FORMAT_IN_PROGRESS = (0, 0x84), "Format In Progress";
    /// 01/00
    CQ_INVALID = (1, 0x00), "Completion Queue Invalid";
    /// 01/01
    INVALID_QUEUE_ID = (1, 0x01), "Invalid Queue Identifier";
    /// 01/02
    INVALID_QUEUE_SIZE = (1, 0x02), "Invalid Queue Size";
    /// 01/03
    ABORT_LIMIT_EXCEEDED = (1, 0x03), "Abort Command Limit Exceeded";
    /// 01/05
    AER_LIMIT_EXCEEDED = (1, 0x05), "Asynchronous Event Request Limit Exceeded";
    /// 01/06
    INVALID_FIRMWARE_SLOT = (1, 0x06), "Invalid Firmware Slot";
    /// 01/07
    INVALID_FIRMWARE_IMAGE = (1, 0x07), "Invalid Firmware Image";
    /// 01/08
    INVALID_INTERRUPT_VECTOR = (1, 0x08), "Invalid Interrupt Vector";
    /// 01/09
    INVALID_LOG_PAGE = (1, 0x09), "Invalid Log Page";
    /// 01/0A
    INVALID_FORMAT = (1, 0x0A), "Invalid Format";
    /// 01/0B
    FW_NEEDS_CONVENTIONAL_RESET = (1, 0x0B), "Firmware Activation Requires Conventional Reset";
    /// 01/0C
    INVALID_QUEUE_DELETION = (1, 0x0C), "Invalid Queue Deletion";
    /// 01/0D
    FEATURE_NOT_SAVEABLE = (1, 0x0D), "Feature Identifier Not Saveable";
    /// 01/0E
    FEATURE_NOT_CHANGEABLE = (1, 0x0E), "Feature Not Changeable";
    /// 01/0F
    FEATURE_NOT_NS_SPECIFIC = (1, 0x0F), "Feature Not Namespace Specific";
    /// 01/10
    FW_NEEDS_SUBSYSTEM_RESET = (1, 0x10), "Firmware Activation Requires NVM Subsystem Reset";
    /// 01/11
    FW_NEEDS_RESET = (1, 0x11), "Firmware Activation Requires Controller Level Reset";
    /// 01/12
    FW_NEEDS_MAX_TIME_VIOLATION = (1, 0x12), "Firmware Activation Requires Maximum Time Violation";
    /// 01/13
    FW_ACTIVATION_PROHIBITED = (1, 0x13), "Firmware Activation Prohibited";
    /// 01/14
    OVERLAPPING_RANGE = (1, 0x14), "Overlapping Range";
    /// 01/1D
    SELF_TEST_IN_PROGRESS = (1, 0x1D), "Device Self-test In Progress";
    /// 01/80
    CONFLICTING_ATTRIBUTES = (1, 0x80), "Conflicting Attributes";
    /// 01/81
    INVALID_PROTECTION_INFO = (1, 0x81), "Invalid Protection Information";
    /// 01/82
    WRITE_TO_READ_ONLY_RANGE = (1, 0x82), "Attempted Write to Read Only Range";
    /// 02/80
    WRITE_FAULT = (2, 0x80), "Write Fault";
    /// 02/81
    UNRECOVERED_READ_ERROR = (2, 0x81), "Unrecovered Read Error";
    /// 02/82
    GUARD_CHECK_ERROR = (2, 0x82), "End-to-end Guard Check Error";
    /// 02/83
    APP_TAG_CHECK_ERROR = (2, 0x83), "End-to-end Application Tag Check Error";
    /// 02/84
    REF_TAG_CHECK_ERROR = (2, 0x84), "End-to-end Reference Tag Check Error";
    /// 02/85
    COMPARE_FAILURE = (2, 0x85), "Compare Failure";
    /// 02/86
    ACCESS_DENIED = (2, 0x86), "Access Denied";
    /// 02/87
    DEALLOCATED_OR_UNWRITTEN = (2, 0x87), "Deallocated or Unwritten Logical Block";
    /// 03/00
    INTERNAL_PATH_ERROR = (3, 0x00), "Internal Path Error";
    /// 07/81: the status nvplan (like PyNVMe) gives a read whose data failed host-side verification.
    HOST_MISCOMPARE = (7, 0x81), "Data Miscompare (host verification)";
}

impl Status {
    /// A status from its type and code, with CRD, More and DNR clear.
    pub const fn new(sct: u8, sc: u8) -> Status {
        Status(((sct as u16 & 7) << 8) | sc as u16)
    }
    /// The raw 15-bit field.
    pub const fn from_raw(raw: u16) -> Status {
        Status(raw & 0x7fff)
    }
    /// The Status Field of a completion's DW3.
    pub const fn from_dw3(dw3: u32) -> Status {
        Status(((dw3 >> 17) & 0x7fff) as u16)
    }
    /// The raw 15-bit field.
    pub const fn raw(self) -> u16 {
        self.0
    }
    /// `SCT/SC` in hex, as plans and reports write statuses (`00/00`, `02/81`).
    pub fn code_text(self) -> String {
        format!("{:02x}/{:02x}", self.sct(), self.sc())
    }
    /// Status Code.
    pub const fn sc(self) -> u8 {
        self.0 as u8
    }
    /// Status Code Type, raw.
    pub const fn sct(self) -> u8 {
        ((self.0 >> 8) & 7) as u8
    }
    /// Status Code Type.
    pub const fn code_type(self) -> StatusCodeType {
        StatusCodeType::from_bits(self.sct())
    }
    /// Command Retry Delay.
    pub const fn crd(self) -> u8 {
        ((self.0 >> 11) & 3) as u8
    }
    /// More: more status is in the Error Information log page.
    pub const fn more(self) -> bool {
        self.0 & (1 << 13) != 0
    }
    /// Do Not Retry.
    pub const fn dnr(self) -> bool {
        self.0 & (1 << 14) != 0
    }
    /// Returns a copy with DNR set to `v`.
    pub const fn with_dnr(self, v: bool) -> Status {
        Status(if v { self.0 | 1 << 14 } else { self.0 & !(1 << 14) })
    }
    /// Returns a copy with More set to `v`.
    pub const fn with_more(self, v: bool) -> Status {
        Status(if v { self.0 | 1 << 13 } else { self.0 & !(1 << 13) })
    }
    /// `SCT << 8 | SC`: the code without CRD/More/DNR (PyNVMe's `error` value).
    pub const fn code(self) -> u16 {
        self.0 & 0x7ff
    }
    /// Whether SCT and SC are both zero.
    pub const fn is_success(self) -> bool {
        self.code() == 0
    }
    /// Whether the type and code equal `other`'s (ignoring CRD, More and DNR).
    pub const fn same_code(self, other: Status) -> bool {
        self.code() == other.code()
    }
    /// The specification's name of the code, or a description of its range.
    pub fn name(self) -> &'static str {
        let (sct, sc) = (self.sct(), self.sc());
        if let Some((_, _, n)) = NAMES.iter().find(|(t, c, _)| *t == sct && *c == sc) {
            return n;
        }
        match (self.code_type(), sc) {
            (StatusCodeType::Vendor, _) => "Vendor Specific",
            (StatusCodeType::Reserved(_), _) => "Reserved Status Code Type",
            (_, 0xC0..=0xFF) => "Vendor Specific",
            _ => "Reserved",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code_text(), self.name())?;
        if self.dnr() {
            f.write_str(" [DNR]")?;
        }
        if self.more() {
            f.write_str(" [More]")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_come_from_the_spec_tables() {
        assert_eq!(Status::INVALID_QUEUE_SIZE.name(), "Invalid Queue Size");
        assert_eq!(Status::new(2, 0x81).name(), "Unrecovered Read Error");
        assert_eq!(Status::new(0, 0xC5).name(), "Vendor Specific");
        assert_eq!(Status::new(0, 0x70).name(), "Reserved");
        assert_eq!(format!("{}", Status::INVALID_FIELD.with_dnr(true)), "00/02 Invalid Field in Command [DNR]");
    }

    #[test]
    fn status_code_ignores_dnr_and_more() {
        let s = Status::HOST_MISCOMPARE.with_dnr(true).with_more(true);
        assert_eq!(s.code(), 0x781);
        assert!(s.same_code(Status::HOST_MISCOMPARE));
        assert!(s.dnr() && s.more());
        assert_eq!(Status::from_dw3((s.raw() as u32) << 17 | 0x1_ffff), s);
    }
}
