"""Studies: a plan (configurations x label fractions x seeds) run by one runner.

* :mod:`~graphevent.studies.plan`: a study as data (:class:`Plan`) and the ``graphevent``
  commands it takes (:func:`jobs`): simulate, preprocess, pretrain, fine-tune, eval.
* :mod:`~graphevent.studies.runner`: runs those commands as subprocesses, several at once,
  each once its dependencies are done; a finished job (its output there, its command
  unchanged) is skipped, so a study resumes where it stopped.
* :mod:`~graphevent.studies.report`: reads what ``graphevent eval`` wrote, the spread over
  seeds and the paired differences (:mod:`~graphevent.studies.stats`), tables, the figure and
  the section a study writes into a docs page.

The scripts in ``scripts/`` (``study_label_efficiency.py``, ``benchmark.py``,
``pretraining_study.py``) are plans for it.
"""
