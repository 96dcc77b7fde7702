"""Runs a job module under plain CPython with a stand-in host (no wasm, no queuemgr).

    python -m queuemgr_job path/to/app.py '{"task_name": "x", "duration": 2}'

Prints describe() and then the result (exit 0) or the job error (exit 1).
"""

import importlib.util
import json
import os
import sys


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    path = argv[1]
    params = argv[2] if len(argv) > 2 else "{}"
    name = os.path.splitext(os.path.basename(path))[0]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)

    import queuemgr_job

    world = queuemgr_job.make_world(name)()
    info = world.describe()
    print("describe:", json.dumps(info.__dict__), file=sys.stderr)
    try:
        out = world.run(params)
    except Exception as e:  # the stand-in Err
        value = getattr(e, "value", e)
        print("error:", json.dumps(getattr(value, "__dict__", {"message": str(value)})))
        return 1
    print("result:", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
