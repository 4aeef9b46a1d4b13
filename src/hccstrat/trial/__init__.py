"""Trial operations for NCT07282184 and NCT07417800.

Modules (import them directly; nothing is loaded here):

- :mod:`~hccstrat.trial.eligibility` — declarative, versioned rule sets (``rules/*.yaml``)
  evaluated as eligible / ineligible / pending with reasons;
  :mod:`~hccstrat.trial.screening` — screening table, screening log, CONSORT counts.
- :mod:`~hccstrat.trial.allocation` — PRE rule; :mod:`~hccstrat.trial.randomisation` —
  sealed stratified permuted blocks and Pocock–Simon minimisation;
  :mod:`~hccstrat.trial.allocation_log` — append-only SHA-256 hash-chained log.
- :mod:`~hccstrat.trial.therapy`, :mod:`~hccstrat.trial.schedule` — doses, calendars,
  missed visits, lost to follow-up; :mod:`~hccstrat.trial.adverse_events` — CTCAE v5.
- :mod:`~hccstrat.trial.analysis`, :mod:`~hccstrat.trial.interim`,
  :mod:`~hccstrat.trial.report` — KM, log-rank, Cox, RMST, ORR, alpha spending, CONSORT.
- :mod:`~hccstrat.trial.simulate` — sample size and in-silico trials;
  :mod:`~hccstrat.trial.demo` — a simulated NCT07282184 trial end to end.
"""

__all__: list[str] = []
