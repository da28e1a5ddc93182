"""Answer extraction and exact match, with lm-eval's own filters and metric.

The filters are built from a task config's ``filter_list`` by lm-eval's
``build_filter_ensemble`` (so ``strict-match`` is the YAML's ``#### (\\-?[0-9\\.\\,]+)``
regex and ``flexible-extract`` its last-number regex, ``group_select: -1``), and
the comparison is lm-eval's ``exact_match`` with the YAML's ``regexes_to_ignore``
and ``ignore_case``. Nothing is re-implemented: these helpers only apply lm-eval's
pieces to single strings, for per-sample reports and tests.
"""

from __future__ import annotations

from typing import Any


def filters(task_config: dict[str, Any]) -> dict[str, Any]:
    """``{filter name: lm-eval FilterEnsemble}`` of a task config's ``filter_list``."""
    from lm_eval.filters import build_filter_ensemble

    out = {}
    for spec in task_config.get("filter_list", []):
        steps = [
            (f["function"], {k: v for k, v in f.items() if k != "function"}) for f in spec["filter"]
        ]
        out[spec["name"]] = build_filter_ensemble(spec["name"], steps)
    return out


def extract(task_config: dict[str, Any], response: str, filter_name: str) -> str:
    """The answer ``filter_name`` extracts from one model ``response`` (lm-eval's fallback
    ``[invalid]`` when nothing matches)."""
    from lm_eval.api.instance import Instance

    ens = filters(task_config).get(filter_name)
    if ens is None:
        raise KeyError(
            f"filter {filter_name!r} is not in the task's filter_list "
            f"({', '.join(filters(task_config))})"
        )
    inst = Instance("generate_until", {}, ("", {}), 0)
    inst.resps = [response]
    ens.apply([inst])
    return inst.filtered_resps[filter_name]


def exact_match(task_config: dict[str, Any], prediction: str, reference: str) -> bool:
    """lm-eval's ``exact_match`` with the task's metric options (``regexes_to_ignore``, case)."""
    from lm_eval.api.metrics import exact_match_hf_evaluate

    opts = next(m for m in task_config["metric_list"] if m["metric"] == "exact_match")
    kwargs = {
        k: v for k, v in opts.items() if k not in ("metric", "aggregation", "higher_is_better")
    }
    return bool(exact_match_hf_evaluate([prediction], [reference], **kwargs)["exact_match"])


def score(task_config: dict[str, Any], response: str, reference: str) -> dict[str, bool]:
    """``{filter name: exact match}`` of one response against a reference answer."""
    return {
        name: exact_match(task_config, extract(task_config, response, name), reference)
        for name in filters(task_config)
    }
