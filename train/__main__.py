"""``python -m ternlab.train [overrides...]`` (also ``accelerate launch -m ternlab.train ...``)."""

from ternlab.train.app import main

if __name__ == "__main__":
    raise SystemExit(main())
