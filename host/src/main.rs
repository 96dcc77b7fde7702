//! The `queuemgr` binary: `queuemgr serve` runs the job host.

#[global_allocator]
static ALLOCATOR: queuemgr::Allocator = queuemgr::ALLOCATOR;

fn main() -> anyhow::Result<()> {
    queuemgr::cli::main()
}
