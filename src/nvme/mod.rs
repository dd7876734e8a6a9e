//! The NVMe specification as data: registers, queue entries, opcodes, status codes,
//! Identify structures, PRP and SGL encodings, log pages and features.
//!
//! Nothing here does I/O. Section numbers refer to the NVM Express Base Specification 1.4
//! (registers, PRPs and queue creation live in the PCIe transport specification from 2.0
//! on, under the same field names).

#[cfg(target_endian = "big")]
compile_error!("nvplan lays NVMe structures out little-endian in host memory; big-endian hosts are not supported");

pub mod cmd;
pub mod cqe;
pub mod features;
pub mod identify;
pub mod log;
pub mod opcode;
pub mod pod;
pub mod prp;
pub mod regs;
pub mod sgl;
pub mod sqe;
pub mod status;

pub use cqe::Cqe;
pub use identify::{IdentifyController, IdentifyNamespace, LbaFormat};
pub use opcode::{AdminOpcode, DataDirection, NvmOpcode};
pub use sqe::Sqe;
pub use status::{Status, StatusCodeType};

/// Generates a getter and a `with_` setter for a bit field of a register newtype.
macro_rules! bitfield {
    ($raw:ty; $(#[$m:meta])* $get:ident, $set:ident: bool, $bit:expr) => {
        $(#[$m])*
        pub const fn $get(self) -> bool {
            (self.0 >> $bit) & 1 == 1
        }
        #[doc = concat!("Returns a copy with `", stringify!($get), "` set.")]
        pub const fn $set(self, v: bool) -> Self {
            let mask: $raw = 1 << $bit;
            Self(if v { self.0 | mask } else { self.0 & !mask })
        }
    };
    ($raw:ty; $(#[$m:meta])* $get:ident, $set:ident: $ty:ty, $lo:expr, $width:expr) => {
        $(#[$m])*
        pub const fn $get(self) -> $ty {
            ((self.0 >> $lo) & (((1 as $raw) << $width) - 1)) as $ty
        }
        #[doc = concat!("Returns a copy with `", stringify!($get), "` set (excess bits are dropped).")]
        pub const fn $set(self, v: $ty) -> Self {
            let mask: $raw = ((((1 as $raw) << $width) - 1) << $lo) as $raw;
            Self((self.0 & !mask) | (((v as $raw) << $lo) & mask))
        }
    };
}
pub(crate) use bitfield;
