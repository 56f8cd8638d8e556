//! The PID file, always replaced whole (temporary file + rename), so a
//! reader never sees it empty or half-written.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

pub(crate) fn write(path: &Path, pid: u32) -> io::Result<()> {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(format!("{pid}\n").as_bytes())?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
