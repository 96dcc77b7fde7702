// Drops the schemas a peer run left behind: for each argument `base`, the schema `base` and every
// schema `base_*`, after ending the sessions tagged with such an application_name. Used by
// scripts/peer-bench.sh after each peer, whatever way it ended.
import { dropSchemas, log } from './common.mjs';

let code = 0;
for (const base of process.argv.slice(2)) {
  if (!/^qm_peer_[a-z0-9_]+$/.test(base)) {
    log(`drop-schemas: refusing ${JSON.stringify(base)} (not qm_peer_*)`);
    code = 2;
    continue;
  }
  try {
    const dropped = await dropSchemas(base);
    if (dropped.length) log(`drop-schemas: dropped ${dropped.join(', ')}`);
  } catch (e) {
    log(`drop-schemas: ${base}: ${e.message}`);
    code = 1;
  }
}
process.exit(code);
