//! The host side of the `job` world, generated once from `wit/job.wit`.
//!
//! Fenced in its own module so that the rest of the runtime speaks in our own types
//! ([`super::JobInfo`], [`super::Outcome`]) and never in generated ones.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "job",
    imports: {
        "queuemgr:job/host.sleep": async | trappable,
        "queuemgr:job/flow.store-step": async | trappable,
        "queuemgr:job/flow.join": async | trappable,
        "queuemgr:job/flow.sleep-until": async | trappable,
        "queuemgr:job/flow.wait-for-event": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});
