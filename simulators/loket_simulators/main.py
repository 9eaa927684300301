"""The one launcher of every simulator: `loket-simulator KIND [options]`.

    loket-simulator rest --profile ombudsman-telecom --port 8101
    loket-simulator soap --profile fagg --write-wsdl contracts/agencies/fagg/intake.wsdl
    python -m loket_simulators email --help

KIND is a name of the entry-point group `loket.simulators`; the options after it are that kind's
own (`loket-simulator KIND --help`).
"""

from __future__ import annotations

import sys

from loket_simulators import kind_module, kinds


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    known = ", ".join(sorted(kinds()))
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        print(f"\nkinds: {known}")
        return
    try:
        module = kind_module(args[0])
    except ValueError as exc:
        sys.exit(f"loket-simulator: {exc}")
    module.main(args[1:])


if __name__ == "__main__":
    main()
