"""What the vendor-client scripts share: named checks, each reported, and the closing count.

    from checks import check, finish

    @check("creates a Bug")
    def _():
        ...

    finish()  # prints "N passed, N failed" and exits non-zero when a check failed
"""
import sys
import traceback

_results = {"passed": 0, "failed": 0}


def check(name):
    """Runs the decorated function at once as a check named `name`."""

    def run(f):
        try:
            f()
            _results["passed"] += 1
            print(f"ok     {name}")
        except Exception:  # noqa: BLE001 - every failure is reported and counted
            _results["failed"] += 1
            print(f"FAILED {name}")
            traceback.print_exc(file=sys.stdout)
        return f

    return run


def finish():
    """Prints the closing line and exits with the outcome."""
    print(f"{_results['passed']} passed, {_results['failed']} failed")
    sys.exit(1 if _results["failed"] else 0)
