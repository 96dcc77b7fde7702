//! Not a job: a WASI command. Dropped into a jobs directory it must be refused with a clear
//! error (it does not export `describe`/`run`), without affecting the real job types.

fn main() {
    println!("I am a command, not a queuemgr job");
}
