//! Physical Region Page rules (NVMe 1.4 §4.3) shared by the host's PRP builder and the
//! simulated controller's PRP walker.
//!
//! - Every PRP entry is dword aligned (bits 1:0 clear).
//! - PRP1 may start anywhere in a page and covers the rest of that page.
//! - If the remainder fits in one page, PRP2 is that page's address (offset 0).
//! - Otherwise PRP2 points to a PRP list. The list pointer may carry an offset; entries in a
//!   list have offset 0. When more entries are needed than fit in the rest of a list page,
//!   the last entry of that page points to the next list page (page aligned).

/// Size of one PRP entry in bytes.
pub const ENTRY_BYTES: usize = 8;

/// Whether an address is dword aligned, as every PRP entry must be.
pub const fn is_dword_aligned(addr: u64) -> bool {
    addr & 3 == 0
}

/// Offset of an address within its memory page.
pub const fn page_offset(addr: u64, page: usize) -> usize {
    (addr & (page as u64 - 1)) as usize
}

/// Bytes PRP1 covers: from its offset to the end of its page.
pub const fn first_entry_bytes(prp1: u64, page: usize) -> usize {
    page - page_offset(prp1, page)
}

/// How PRP2 must be interpreted for a transfer of `len` bytes starting at `prp1`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Prp2Use {
    /// The transfer fits in PRP1's page; PRP2 is not used.
    Unused,
    /// PRP2 is the address of the second (and last) data page.
    DataPage,
    /// PRP2 points to a PRP list holding `entries` data-page entries.
    List {
        /// Number of data pages described by the list (chain pointers not counted).
        entries: usize,
    },
}

/// Decides the role of PRP2 for a transfer.
pub const fn prp2_use(prp1: u64, len: usize, page: usize) -> Prp2Use {
    let first = first_entry_bytes(prp1, page);
    if len <= first {
        return Prp2Use::Unused;
    }
    let rest = len - first;
    if rest <= page { Prp2Use::DataPage } else { Prp2Use::List { entries: rest.div_ceil(page) } }
}

/// Number of entries that fit in a list page from `list_ptr`'s offset to the page end.
pub const fn entries_in_list_page(list_ptr: u64, page: usize) -> usize {
    (page - page_offset(list_ptr, page)) / ENTRY_BYTES
}

/// Number of PRP list pages needed to describe `entries` data pages when the first list
/// starts at `first_offset` bytes into its page (every later list page starts at offset 0).
pub const fn list_pages_needed(entries: usize, first_offset: usize, page: usize) -> usize {
    let per_page = page / ENTRY_BYTES;
    let mut capacity = (page - first_offset) / ENTRY_BYTES;
    let mut pages = 1;
    let mut left = entries;
    loop {
        if left <= capacity {
            return pages;
        }
        // The last slot becomes the chain pointer.
        left -= capacity - 1;
        capacity = per_page;
        pages += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = 4096;

    #[test]
    fn prp2_use_matches_spec_cases() {
        assert_eq!(prp2_use(0x1000, 4096, P), Prp2Use::Unused);
        assert_eq!(prp2_use(0x1010, 4096, P), Prp2Use::DataPage);
        assert_eq!(prp2_use(0x1000, 8192, P), Prp2Use::DataPage);
        assert_eq!(prp2_use(0x1000, 8193, P), Prp2Use::List { entries: 2 });
        assert_eq!(prp2_use(0x1ffc, 4, P), Prp2Use::Unused);
        assert_eq!(prp2_use(0x1ffc, 5, P), Prp2Use::DataPage);
        assert_eq!(prp2_use(0x1000, 2 << 20, P), Prp2Use::List { entries: 511 });
    }

    #[test]
    fn list_pages_chain_when_entries_overflow_a_page() {
        assert_eq!(entries_in_list_page(0x2020, P), 508);
        assert_eq!(list_pages_needed(512, 0, P), 1);
        assert_eq!(list_pages_needed(513, 0, P), 2);
        assert_eq!(list_pages_needed(508, 0x20, P), 1);
        assert_eq!(list_pages_needed(509, 0x20, P), 2);
        // 511 + 511 + 512 entries fit in three chained pages.
        assert_eq!(list_pages_needed(1534, 0, P), 3);
        assert_eq!(list_pages_needed(1535, 0, P), 4);
    }
}
