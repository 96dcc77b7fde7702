//! The `queuemgr` command line, built inside this package so that the end-to-end tests can
//! start it as a real process (`CARGO_BIN_EXE_…` only names binaries of one's own package).

#[global_allocator]
static ALLOCATOR: queuemgr::Allocator = queuemgr::ALLOCATOR;

fn main() -> anyhow::Result<()> {
    queuemgr::cli::main()
}
