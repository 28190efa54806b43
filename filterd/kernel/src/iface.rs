//! Network interfaces by name and by index (`if_nametoindex(3)`,
//! `if_indextoname(3)`), in the calling thread's network namespace.

use std::ffi::{CStr, CString};

/// The index of interface `name`, if it exists.
pub fn index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: c is a NUL-terminated string alive for the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => None,
        i => Some(i),
    }
}

/// The name of interface `index`, if it exists.
pub fn name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE writable bytes, as if_indextoname
    // requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_both_ways() {
        let i = index("lo").expect("every namespace has lo");
        assert_eq!(name(i).as_deref(), Some("lo"));
        assert_eq!(index("no-such-if0"), None);
        assert_eq!(index("nul\0"), None);
        assert_eq!(name(0), None);
    }
}
