"""The survey side of prevalence (STATIP): forced labour and trafficking for forced labour
from household surveys, and the network scale-up method, read side by side with MSE.

Data flow: survey microdata -> declared design -> classification by a versioned statistical
definition (ICLS 2018) -> design-based estimates -> disclosure layer -> outputs. Nothing here
imports the command line or the report; the models of ``tipstat.models`` know nothing of it.

Heavy dependencies (the survey variance library) are imported only by the functions that need
them, so ``import tipstat.survey`` is fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# public name -> module that defines it (imported on first use); one block per part
_DESIGN: dict[str, str] = {
    "read_survey": "tipstat.survey.read",
    "declare_design": "tipstat.survey.design",
    "SurveyDesign": "tipstat.survey.design",
    "survey_prevalence": "tipstat.survey.prevalence",
    "Prevalence": "tipstat.survey.prevalence",
    "PrevalenceTable": "tipstat.survey.prevalence",
}
_DEFINITION: dict[str, str] = {
    "Classification": "tipstat.survey.definition",
    "Definition": "tipstat.survey.definition",
    "QuestionnaireMapping": "tipstat.survey.definition",
    "available_definitions": "tipstat.survey.definition",
    "classify": "tipstat.survey.definition",
    "load_definition": "tipstat.survey.definition",
    "load_mapping": "tipstat.survey.definition",
    "draw_survey_sample": "tipstat.survey.simulate",
    "simulate_survey_population": "tipstat.survey.simulate",
}
_NSUM: dict[str, str] = {
    "fit_nsum": "tipstat.survey.nsum",
    "nsum_withheld": "tipstat.survey.nsum",
    "side_by_side": "tipstat.survey.side_by_side",
    "publish_prevalence": "tipstat.survey.publish",
    "PublishedPrevalence": "tipstat.survey.publish",
    "prevalence_frame": "tipstat.survey.publish",
    "run_survey": "tipstat.survey.run",
    "SurveyRun": "tipstat.survey.run",
    "read_design_spec": "tipstat.survey.run",
}

_LAZY = {**_DESIGN, **_DEFINITION, **_NSUM}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tipstat.survey' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
