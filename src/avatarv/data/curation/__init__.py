"""The data engine: a declarative, resumable curation pipeline (seed: "Data Curation and Annotation",
"Infrastructure"; ``../shared/DESIGN.md`` "Data engine").

Control plane (ours, after the seed's observe-diff-reconcile engine) and data plane (an existing executor):

- ``stage.py``     ``Stage`` (declared ``inputs``/``outputs``/``resources``/``scope``, typed ``Config``, pure
                   ``process``), ``Output`` (values + arrays + files, or ``Output.unavailable(reason)``);
- ``pipeline.py``  ``Pipeline`` (stages in dependency order, from Python or TOML), inputs, task keys chained
                   through config hashes (desired state);
- ``store.py``     observed state: ``state.sqlite`` task records + atomically renamed artifact directories;
- ``engine.py``    ``Engine.plan()`` (the diff) and ``Engine.run(executor)`` (reconcile; bounded retries,
                   per-item failure records, resume after SIGKILL, rerun only what a config change touches);
- ``executors.py`` ``LocalExecutor`` (process pool, default), ``RayExecutor`` (``pip install .[scale]``),
                   ``InlineExecutor`` (in-process, for debugging);
- ``stages/``      the seed's stages (``stages.REGISTRY`` names, ``stages.PRESETS``: prefilter, filters,
                   identity, full); ``stages/shards.py`` writes the trainer's ``avatarv.data.shards`` format;
- ``evaluate.py``  filter precision/recall and identity-graph pair precision/recall on world footage;
- ``worldset.py``  world clips, raw footage with labelled defects, and bad files for tests and benchmarks.

Usage::

    avatarv curate run full --input raw/ --out curated/ [--executor local|ray] [--workers N]
    avatarv curate diff full --input raw/ --out curated/     # what a run would do
    avatarv curate status --out curated/                     # counts, failures, unavailable stages, frames/s

    from avatarv.data.curation import Engine, Pipeline, load_pipeline
    report = Engine(load_pipeline("pipeline.toml"), "raw/", "curated/").run("local", workers=2)

A pipeline file::

    [[stage]]
    use = "normalise"
    config = { max_side = 640 }

    [[stage]]
    use = "prefilter"

A stage's ``version`` is part of its config hash: bump it when its code changes what it outputs.
"""

from avatarv.data.curation.engine import Engine, RunReport
from avatarv.data.curation.executors import InlineExecutor, LocalExecutor, RayExecutor, make_executor
from avatarv.data.curation.pipeline import Pipeline, discover_inputs, load_pipeline
from avatarv.data.curation.stage import Artifact, Item, Output, Resources, Stage

__all__ = ["Artifact", "Engine", "InlineExecutor", "Item", "LocalExecutor", "Output", "Pipeline", "RayExecutor",
           "Resources", "RunReport", "Stage", "discover_inputs", "load_pipeline", "make_executor"]
