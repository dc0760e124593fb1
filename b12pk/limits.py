"""Every input limit b12pk enforces, in one place.

The limits keep each request inside what the model was built for and what a run can do in
reasonable time and memory. Each one is *stated* (a design choice written here and in
``docs/errors.md``), not taken from a source, unless its comment names one. Modules import
their limits from here; nothing else defines one.
"""

from __future__ import annotations

__all__ = [
    "MAX_DOSE_UG", "MAX_DAILY_UG", "MAX_DOSES_PER_DAY", "MAX_EVENTS", "MAX_PARENTERAL_DOSES",
    "MAX_PER_CYCLE", "MAX_DAYS", "MIN_DAYS", "MAX_RANGES", "MAX_VARIANTS", "MAX_TOML_BYTES",
    "MAX_EVENT_TABLE_BYTES", "MAX_TEXT_CHARS", "MAX_ECHO_CHARS", "MAX_ECHO_PATH_CHARS",
    "MAX_LABEL_CHARS", "MAX_INFUSION_DAYS",
    "MAX_MESSAGE_CHARS", "MAX_QUOTED_CHARS", "MAX_INT", "MAX_PATIENTS",
    "MAX_POPULATION_TRANSIENTS", "MAX_POPULATION_PATIENT_DAYS",
    "MAX_CHUNK", "MAX_QUANTILES", "MAX_TRAJECTORY_VALUES", "MAX_SBML_EVENTS", "MEMORY_FRACTION",
    "MAX_UNCERTAINTY_DRAWS",
    "MAX_EVIDENCE_DRAWS",
]

# -- doses -------------------------------------------------------------------------------

#: Largest single dose, µg (100 mg). Stated: labelled B12 doses are 1-5 mg; the model's
#: parameters come from doses up to a few mg, so beyond 100 mg it would only extrapolate.
MAX_DOSE_UG = 100_000.0

#: Largest total of the doses given on one treatment day, µg (100 mg). Stated: the single-dose
#: limit, so that repeating a dose cannot bypass it ("100 mg IM 1000 times daily").
MAX_DAILY_UG = 100_000.0

#: Most doses on one treatment day (hourly dosing). Stated.
MAX_DOSES_PER_DAY = 24

#: Most doses one regimen may give within a horizon (any route). Stated: about 10 doses a
#: day for 100 years; a single-patient run of this many oral doses takes ~15 s.
MAX_EVENTS = 400_000

#: Most parenteral (IM, deep SC, IV, intranasal) doses within a horizon. Stated: each one is
#: integrated through its fast transient (20-30 ms), so this bounds a run to about a minute;
#: monthly injections for 100 years and weekly ones for 38 years fit.
MAX_PARENTERAL_DOSES = 2_000

#: Most doses one cycle of a repeating schedule may hold ("N times daily"). Stated.
MAX_PER_CYCLE = 1000

# -- time ----------------------------------------------------------------------------------

#: Longest accepted horizon, days (100 years). Stated.
MAX_DAYS = 100 * 365.0

#: Shortest accepted horizon, days (about 1 second). Stated: shorter horizons hold no
#: output time beyond t = 0.
MIN_DAYS = 1e-5

# -- text and files --------------------------------------------------------------------------

#: Most ranges one regimen text may hold in ``regimen_variants`` (2**6 = 64 variants).
#: Stated: each variant is a full simulation per patient.
MAX_RANGES = 6

#: Most regimens one TOML file may give, range variants included. Stated.
MAX_VARIANTS = 2 ** MAX_RANGES

#: Largest regimen or patient TOML file, bytes (10 MB).
MAX_TOML_BYTES = 10_000_000

#: Largest CSV event table, bytes (100 MB).
MAX_EVENT_TABLE_BYTES = 100_000_000

#: Longest regimen text, characters.
MAX_TEXT_CHARS = 10_000

#: Most characters of a user's input echoed in an error message (paths: 120, keeping
#: their end).
MAX_ECHO_CHARS = 80
MAX_ECHO_PATH_CHARS = 80
"""(At most :data:`MAX_QUOTED_CHARS`, so that the message cleaner keeps a cut path's end.)"""

#: Longest display label of a regimen or a patient (characters). Stated.
MAX_LABEL_CHARS = 120

#: Longest infusion (days) a dose event may have (``DoseEvent.duration_days``). Stated.
MAX_INFUSION_DAYS = 1.0

#: Longest message an error carries; longer ones keep their start and end.
MAX_MESSAGE_CHARS = 600

#: Longest quoted segment kept whole in any message; longer ones keep their first
#: :data:`MAX_ECHO_CHARS` characters.
MAX_QUOTED_CHARS = 100

#: Largest integer accepted from a file or the command line where a number is expected
#: (2**53: larger integers are not exact as floats).
MAX_INT = 2 ** 53

# -- populations and exports ---------------------------------------------------------------

#: Largest accepted population.
MAX_PATIENTS = 100_000_000

#: Most parameter draws ``simulate(..., uncertainty=N)`` takes for a prediction interval.
#: Stated: 10,000 one-year runs with injections take about 7 minutes; 100 give a 90 %
#: interval to within a few percent.
MAX_UNCERTAINTY_DRAWS = 10_000

#: Most posterior draws per claim in the evidence analysis (each re-runs the claim; 500 draws
#: of the whole catalogue take about three hours on 2 cores).
MAX_EVIDENCE_DRAWS = 500

#: Most work one population run (or one report's population view, all runs together) may
#: ask for, so that no accepted run takes more than a few minutes on a 2-core machine:
#: patient-transients (each patient's injection or intranasal doses within the horizon; the
#: engine integrates about 50,000 a second there, so 2e7 is about 7 minutes) and
#: patient-days (1e10 is about 3 minutes of oral dosing). Stated.
MAX_POPULATION_TRANSIENTS = 20_000_000
MAX_POPULATION_PATIENT_DAYS = 10_000_000_000

#: Most percentiles one population run reports (every whole percent, 1-99). Stated.
MAX_QUANTILES = 99

#: Largest chunk (patients simulated at once).
MAX_CHUNK = 262_144

#: Most patient-days of per-patient trajectories one run writes (about 6 GB of Parquet).
MAX_TRAJECTORY_VALUES = 200_000_000

#: Most SBML events in one export (one repeating event per regular dose series, so only
#: irregular dose lists come near it; libSBML and libRoadRunner need memory and time that
#: grow with the square of the count). Stated.
MAX_SBML_EVENTS = 5_000

#: Share of the memory available to this process that a run may plan to use.
MEMORY_FRACTION = 0.5


def memory_budget_bytes() -> int:
    """Bytes a run may plan to allocate: :data:`MEMORY_FRACTION` of the least of physical
    memory, the cgroup limit (containers) and the address-space limit (``ulimit -v``)."""
    import os

    candidates = []
    try:
        candidates.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
            if text.isdigit():
                candidates.append(int(text))
        except OSError:
            pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            candidates.append(soft)
    except (ImportError, OSError, ValueError):  # pragma: no cover - non-POSIX
        pass
    total = min(candidates) if candidates else 8 * 2 ** 30
    return int(total * MEMORY_FRACTION)


# --- the teaching app (b12pk app) ---------------------------------------------------------
#: Regimens shown side by side on the app's page.
MAX_APP_REGIMENS = 4

#: Longest horizon the app simulates (days): 10 years, daily, keeps a page's data small.
MAX_APP_DAYS = 3650.0

#: Parameter sets drawn for the app's uncertainty band (each multiplies the work).
APP_UNCERTAINTY_DRAWS = 20

#: Most parenteral doses the app simulates for one regimen, counted once per parameter set
#: (each takes about 1.5 ms through its transient on a 2-core machine: the cap keeps one
#: regimen within about 2.5 s, so a class's page never hangs for minutes).
MAX_APP_PARENTERAL_RUNS = 1_500

#: Largest request body the app's server reads (bytes).
MAX_APP_REQUEST_BYTES = 65_536
