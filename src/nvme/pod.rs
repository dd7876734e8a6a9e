//! Plain-old-data byte views of spec structures, used to copy them to and from DMA memory.

/// A spec structure that can be viewed as bytes and rebuilt from any bytes.
///
/// # Safety
/// Implementors must be `#[repr(C)]` (or transparent), contain only integers and arrays of
/// integers, have no padding (each implementor asserts its size at compile time), and accept
/// every bit pattern as a valid value.
pub unsafe trait Pod: Copy + 'static {}

/// The bytes of a spec structure.
pub fn as_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no padding and no invalid byte, so all `size_of::<T>()` bytes
    // behind `v` are initialised and may be read as `u8` for the lifetime of the borrow.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// The bytes of a spec structure, mutable.
pub fn as_bytes_mut<T: Pod>(v: &mut T) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; any bytes written back form a valid `T` because `T: Pod`
    // accepts every bit pattern.
    unsafe { std::slice::from_raw_parts_mut((v as *mut T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// A value with every byte zero.
pub fn zeroed<T: Pod>() -> T {
    // SAFETY: the all-zero pattern is valid for every `T: Pod`.
    unsafe { std::mem::zeroed() }
}

/// Rebuilds a structure from the start of `bytes`; missing bytes read as zero.
pub fn from_bytes<T: Pod>(bytes: &[u8]) -> T {
    let mut v = zeroed::<T>();
    let dst = as_bytes_mut(&mut v);
    let n = dst.len().min(bytes.len());
    dst[..n].copy_from_slice(&bytes[..n]);
    v
}
