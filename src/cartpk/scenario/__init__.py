"""What-if scenarios: a TOML file of population, CAR-T product, arms and outputs, run over a
virtual population (``cartpk simulate SCENARIO.toml --out DIR``).

- :mod:`.spec`: the scenario as frozen dataclasses (:class:`Scenario`, :class:`Arm` ...) and its
  limits;
- :mod:`.parse`: TOML to :class:`Scenario` (:func:`load_scenario`, :func:`parse_scenario`), every
  key checked and every error named by the file and the key;
- :mod:`.run`: :func:`run_scenario`, returning a :class:`ScenarioResult` of tables (writing them
  is the command line's job, ``cartpk/commands/simulate.py``).
"""

from .parse import load_scenario as load_scenario
from .parse import parse_scenario as parse_scenario
from .run import ScenarioResult as ScenarioResult
from .run import run_scenario as run_scenario
from .run import summarise as summarise
from .spec import MAX_GRID_POINTS as MAX_GRID_POINTS
from .spec import MAX_OUTPUT_TIMES as MAX_OUTPUT_TIMES
from .spec import PRODUCTS as PRODUCTS
from .spec import REFERENCE_WEIGHT_KG as REFERENCE_WEIGHT_KG
from .spec import ROUTES as ROUTES
from .spec import SCHEDULE_VARIABLES as SCHEDULE_VARIABLES
from .spec import TRAJECTORIES as TRAJECTORIES
from .spec import Arm as Arm
from .spec import Grid as Grid
from .spec import OptimizeSpec as OptimizeSpec
from .spec import Product as Product
from .spec import Scenario as Scenario
from .spec import TherapyCourse as TherapyCourse
from .spec import bundled_scenario as bundled_scenario
