//! Admin and NVM command set opcodes (NVMe 1.4 Figure 139 and Figure 346), decoded totally.

macro_rules! opcodes {
    ($(#[$tm:meta])* $ty:ident { $($(#[$m:meta])* $v:ident = $n:expr, $text:expr;)* }) => {
        $(#[$tm])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
        pub enum $ty {
            $($(#[$m])* $v,)*
            /// Any other opcode (reserved or vendor specific).
            Unknown(u8),
        }

        impl From<u8> for $ty {
            fn from(v: u8) -> Self {
                match v {
                    $($n => $ty::$v,)*
                    other => $ty::Unknown(other),
                }
            }
        }

        impl From<$ty> for u8 {
            fn from(v: $ty) -> u8 {
                match v {
                    $($ty::$v => $n,)*
                    $ty::Unknown(other) => other,
                }
            }
        }

        impl $ty {
            /// The opcode byte.
            pub fn code(self) -> u8 {
                self.into()
            }
            /// The specification's name.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$v => $text,)*
                    $ty::Unknown(v) if v >= 0xC0 => "Vendor Specific",
                    $ty::Unknown(_) => "Reserved",
                }
            }
            /// Every named opcode.
            pub const ALL: &'static [$ty] = &[$($ty::$v),*];
        }
    };
}

opcodes! {
    /// Admin command opcodes (§5, Figure 139).
    AdminOpcode {
        /// 00h
        DeleteIoSq = 0x00, "Delete I/O Submission Queue";
        /// 01h
        CreateIoSq = 0x01, "Create I/O Submission Queue";
        /// 02h
        GetLogPage = 0x02, "Get Log Page";
        /// 04h
        DeleteIoCq = 0x04, "Delete I/O Completion Queue";
        /// 05h
        CreateIoCq = 0x05, "Create I/O Completion Queue";
        /// 06h
        Identify = 0x06, "Identify";
        /// 08h
        Abort = 0x08, "Abort";
        /// 09h
        SetFeatures = 0x09, "Set Features";
        /// 0Ah
        GetFeatures = 0x0A, "Get Features";
        /// 0Ch
        AsyncEventRequest = 0x0C, "Asynchronous Event Request";
        /// 0Dh
        NamespaceManagement = 0x0D, "Namespace Management";
        /// 10h
        FirmwareCommit = 0x10, "Firmware Commit";
        /// 11h
        FirmwareDownload = 0x11, "Firmware Image Download";
        /// 14h
        DeviceSelfTest = 0x14, "Device Self-test";
        /// 15h
        NamespaceAttachment = 0x15, "Namespace Attachment";
        /// 18h
        KeepAlive = 0x18, "Keep Alive";
        /// 19h
        DirectiveSend = 0x19, "Directive Send";
        /// 1Ah
        DirectiveReceive = 0x1A, "Directive Receive";
        /// 1Ch
        VirtualizationManagement = 0x1C, "Virtualization Management";
        /// 7Ch
        DoorbellBufferConfig = 0x7C, "Doorbell Buffer Config";
        /// 80h
        FormatNvm = 0x80, "Format NVM";
        /// 81h
        SecuritySend = 0x81, "Security Send";
        /// 82h
        SecurityReceive = 0x82, "Security Receive";
        /// 84h
        Sanitize = 0x84, "Sanitize";
        /// 86h
        GetLbaStatus = 0x86, "Get LBA Status";
    }
}

impl AdminOpcode {
    /// Whether the command's data pointer is PRP Entry 1 alone: the queue memory of Create
    /// I/O Submission/Completion Queue (a PRP list when not contiguous), §5.3 and §5.4;
    /// PRP Entry 2 is reserved there, whatever the queue's size.
    pub fn prp1_only(self) -> bool {
        matches!(self, AdminOpcode::CreateIoSq | AdminOpcode::CreateIoCq)
    }
}

opcodes! {
    /// NVM command set I/O opcodes (Figure 346).
    NvmOpcode {
        /// 00h
        Flush = 0x00, "Flush";
        /// 01h
        Write = 0x01, "Write";
        /// 02h
        Read = 0x02, "Read";
        /// 04h
        WriteUncorrectable = 0x04, "Write Uncorrectable";
        /// 05h
        Compare = 0x05, "Compare";
        /// 08h
        WriteZeroes = 0x08, "Write Zeroes";
        /// 09h
        DatasetManagement = 0x09, "Dataset Management";
        /// 0Ch
        Verify = 0x0C, "Verify";
        /// 0Dh
        ReservationRegister = 0x0D, "Reservation Register";
        /// 0Eh
        ReservationReport = 0x0E, "Reservation Report";
        /// 11h
        ReservationAcquire = 0x11, "Reservation Acquire";
        /// 15h
        ReservationRelease = 0x15, "Reservation Release";
        /// 19h
        Copy = 0x19, "Copy";
    }
}

/// Data transfer direction encoded in opcode bits 1:0 (§5, Figure 139 note).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataDirection {
    /// 00b: no data transfer.
    None,
    /// 01b: host to controller.
    HostToController,
    /// 10b: controller to host.
    ControllerToHost,
    /// 11b: bidirectional.
    Bidirectional,
}

impl DataDirection {
    /// The direction an opcode byte implies.
    pub const fn of(opcode: u8) -> DataDirection {
        match opcode & 3 {
            0 => DataDirection::None,
            1 => DataDirection::HostToController,
            2 => DataDirection::ControllerToHost,
            _ => DataDirection::Bidirectional,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_decode_totally_with_catch_all() {
        for op in 0..=255u8 {
            assert_eq!(u8::from(AdminOpcode::from(op)), op);
            assert_eq!(u8::from(NvmOpcode::from(op)), op);
        }
        assert_eq!(NvmOpcode::from(2), NvmOpcode::Read);
        assert_eq!(NvmOpcode::from(0x03), NvmOpcode::Unknown(3));
        assert_eq!(AdminOpcode::from(0xC1).name(), "Vendor Specific");
        assert_eq!(AdminOpcode::Identify.name(), "Identify");
    }

    #[test]
    fn data_direction_follows_opcode_low_bits() {
        assert_eq!(DataDirection::of(NvmOpcode::Write.code()), DataDirection::HostToController);
        assert_eq!(DataDirection::of(NvmOpcode::Read.code()), DataDirection::ControllerToHost);
        assert_eq!(DataDirection::of(NvmOpcode::Flush.code()), DataDirection::None);
        assert_eq!(DataDirection::of(NvmOpcode::WriteZeroes.code()), DataDirection::None);
    }
}
