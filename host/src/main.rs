//! The `queuemgr` binary: `queuemgr serve` runs the job host.

fn main() -> anyhow::Result<()> {
    queuemgr::cli::main()
}
