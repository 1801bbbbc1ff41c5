//! The binary's relocation table, given back once the loader has applied it.
//!
//! A position-independent executable carries a table of every pointer the loader must move
//! to where the binary was mapped: ~80,000 entries, ~1.9 MB for this binary. The loader
//! reads it once, before `main`, and nothing reads it again; yet its pages stay in the
//! process's memory for as long as it runs — a ninth of an idle `octoflow serve`. The
//! table lies in a read-only mapping of the file, so its pages hold nothing but the file's
//! bytes: telling the kernel they are not needed (`MADV_DONTNEED`) unmaps them at no risk
//! (were they read again, the kernel would map them again from the file).
//!
//! Packed relocations (`DT_RELR`) would make the table ~50 times smaller instead, but need
//! glibc 2.36 where the binary runs.

use nix::libc;

/// Unmaps the pages wholly inside the relocation table (`DT_RELA`) if it lies in a
/// read-only segment of the executable. Returns the bytes given back: 0 where there is
/// nothing to give (not 64-bit Linux, no table, a writable segment).
#[allow(unsafe_code)]
pub(crate) fn release() -> usize {
    let Some((start, len)) = table().and_then(|table| whole_pages(table, page_size())) else {
        return 0;
    };
    // SAFETY: `table` found these pages inside a mapping of the executable without write
    // permission: they hold the file's bytes only, which the kernel maps again from the
    // file should anything read them; no Rust reference points into the table.
    let advised = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if advised == 0 { len } else { 0 }
}

/// `(address, length)` of the relocation table in memory, if it lies in a read-only
/// segment of the executable.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[allow(unsafe_code)]
fn table() -> Option<(usize, usize)> {
    const DT_NULL: u64 = 0;
    const DT_RELA: u64 = 7;
    const DT_RELASZ: u64 = 8;
    // SAFETY: the kernel's auxiliary vector gives the address and number of the
    // executable's program headers, mapped read-only for the life of the process.
    let headers = unsafe {
        let at = libc::getauxval(libc::AT_PHDR) as *const libc::Elf64_Phdr;
        let count = usize::try_from(libc::getauxval(libc::AT_PHNUM)).ok()?;
        if at.is_null() || count == 0 {
            return None;
        }
        std::slice::from_raw_parts(at, count)
    };
    let own = headers.iter().find(|h| h.p_type == libc::PT_PHDR)?;
    let base = (headers.as_ptr() as usize).checked_sub(usize::try_from(own.p_vaddr).ok()?)?;
    let dynamic = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC)?;
    let mut entry = (base + usize::try_from(dynamic.p_vaddr).ok()?) as *const [u64; 2];
    let (mut rela, mut size) = (None, None);
    loop {
        // SAFETY: the dynamic section is mapped for the life of the process and ends with
        // a `DT_NULL` entry, where the walk stops.
        let [tag, value] = unsafe { *entry };
        match tag {
            DT_NULL => break,
            DT_RELA => rela = usize::try_from(value).ok(),
            DT_RELASZ => size = usize::try_from(value).ok(),
            _ => {}
        }
        // SAFETY: not past the `DT_NULL` entry, which was not reached yet.
        entry = unsafe { entry.add(1) };
    }
    // Loaders may leave the file's address of the table in the dynamic section, or write
    // it moved to where the binary was mapped; the former is below the mapping.
    let (rela, len) = (rela?, size?);
    let start = if rela < base { base + rela } else { rela };
    let read_only = headers.iter().any(|h| {
        let from = base + usize::try_from(h.p_vaddr).unwrap_or(usize::MAX / 2);
        let to = from + usize::try_from(h.p_memsz).unwrap_or(0);
        h.p_type == libc::PT_LOAD
            && h.p_flags & libc::PF_W == 0
            && from <= start
            && start + len <= to
    });
    read_only.then_some((start, len))
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn table() -> Option<(usize, usize)> {
    None
}

/// The pages wholly inside `(address, length)`.
fn whole_pages((start, len): (usize, usize), page: usize) -> Option<(usize, usize)> {
    let first = start.div_ceil(page) * page;
    let end = (start + len) / page * page;
    (end > first).then(|| (first, end - first))
}

#[allow(unsafe_code)]
fn page_size() -> usize {
    // SAFETY: `sysconf` only reads a setting of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_pages_are_given_back() {
        assert_eq!(whole_pages((4096, 8192), 4096), Some((4096, 8192)));
        assert_eq!(whole_pages((4000, 8300), 4096), Some((4096, 8192)));
        assert_eq!(whole_pages((4000, 4000), 4096), None);
        assert_eq!(whole_pages((4097, 8190), 4096), None);
    }

    /// The test binary is itself position-independent: its table is found, given back, and
    /// reads the same afterwards (mapped again from the file).
    #[test]
    #[allow(unsafe_code)]
    fn the_table_is_given_back_and_still_reads_the_same() {
        let (start, len) = table().expect("a PIE test binary has a read-only relocation table");
        // SAFETY: `table` found this range mapped and readable; nothing writes it.
        let read = || unsafe { std::slice::from_raw_parts(start as *const u8, len) }.to_vec();
        let before = read();
        assert!(
            release() > 0,
            "some whole pages of {len} bytes were given back"
        );
        assert_eq!(read(), before);
    }
}
