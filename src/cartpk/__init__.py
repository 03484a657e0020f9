"""cartpk: differentiable PK/PD of CAR-T cells across blood, stroma and tumour, on JAX.

Public API (everything else is internal):

- models: :class:`Multiphasic` (Stein 2019), :class:`BloodStromaTumour` (mechanistic),
  :class:`AbstractModel` to define your own, with :class:`Parameter` and :class:`State`; the
  standard PK/PD library of :mod:`cartpk.models.pk` (:class:`OneCompartmentOral` and the other
  one-, two- and three-compartment models, solved in closed form; :class:`IndirectResponseI`
  to ``IV``);
- therapies: :class:`AbstractTherapy`, :func:`combine`, the registry :data:`THERAPIES`;
- dosing: :class:`Dose`, :class:`Regimen`, :func:`stack_regimens`;
- simulation: :func:`simulate`, :func:`simulate_population`, :class:`Solution`, its
  :class:`Status`;
- scenarios: :func:`load_scenario`, :func:`run_scenario`, :class:`VirtualPopulation`,
  :func:`endpoint_table`, :func:`optimize_schedule` (``cartpk simulate`` / ``cartpk optimize``);
- plots: :mod:`cartpk.plots`; sensitivity analysis: :mod:`cartpk.sensitivity`;
- data: :func:`list_datasets`, :func:`load_dataset`, :func:`read_nonmem`;
- non-compartmental analysis: :mod:`cartpk.nca` (``cartpk nca``);
- export to SBML and PEtab: :mod:`cartpk.export` (:func:`~cartpk.export.to_sbml`,
  :func:`~cartpk.export.to_petab`);
- units: :mod:`cartpk.units`; errors: :class:`CartpkError` and subclasses.

cartpk computes in float64: call :func:`enable_x64` once before use.
"""

from . import estimation, export, nca, plots, sensitivity, units
from .cache import enable_compilation_cache
from .channels import CHANNELS
from .datasets import list_datasets, load_dataset
from .endpoints import ENDPOINTS, EndpointOptions, endpoint_table
from .errors import (
    ArgumentError,
    CartpkError,
    ConvergenceError,
    DatasetError,
    OutputError,
    ParameterError,
    RegimenError,
    ScenarioError,
    SimulationWarning,
)
from .estimation import fit
from .models import (
    AbstractModel,
    BloodStromaTumour,
    IndirectResponseI,
    IndirectResponseII,
    IndirectResponseIII,
    IndirectResponseIV,
    Multiphasic,
    OneCompartmentIV,
    OneCompartmentOral,
    OneCompartmentOralLag,
    ThreeCompartmentIV,
    ThreeCompartmentOral,
    ThreeCompartmentOralLag,
    TwoCompartmentIV,
    TwoCompartmentOral,
    TwoCompartmentOralLag,
)
from .nonmem import read_nonmem
from .optimize import ScheduleProblem, optimize_schedule
from .parameters import Parameter, State
from .population import Covariate, Subgroup, VirtualPopulation
from .precision import enable_x64, require_x64
from .regimen import Dose, DoseArrays, Regimen, stack_regimens
from .scenario import Scenario, load_scenario, run_scenario
from .simulate import (
    Solution,
    Status,
    simulate,
    simulate_population,
    simulate_population_chunks,
)
from .therapies import THERAPIES, AbstractTherapy, combine

__version__ = "0.1.0"

__all__ = [
    "CHANNELS",
    "ENDPOINTS",
    "Covariate",
    "EndpointOptions",
    "Scenario",
    "ScheduleProblem",
    "Subgroup",
    "VirtualPopulation",
    "endpoint_table",
    "load_scenario",
    "nca",
    "optimize_schedule",
    "plots",
    "run_scenario",
    "sensitivity",
    "THERAPIES",
    "AbstractModel",
    "AbstractTherapy",
    "ArgumentError",
    "BloodStromaTumour",
    "CartpkError",
    "ConvergenceError",
    "DatasetError",
    "Dose",
    "DoseArrays",
    "Multiphasic",
    "OneCompartmentIV",
    "OneCompartmentOral",
    "OneCompartmentOralLag",
    "TwoCompartmentIV",
    "TwoCompartmentOral",
    "TwoCompartmentOralLag",
    "ThreeCompartmentIV",
    "ThreeCompartmentOral",
    "ThreeCompartmentOralLag",
    "IndirectResponseI",
    "IndirectResponseII",
    "IndirectResponseIII",
    "IndirectResponseIV",
    "OutputError",
    "Parameter",
    "ParameterError",
    "Regimen",
    "RegimenError",
    "ScenarioError",
    "SimulationWarning",
    "Solution",
    "Status",
    "State",
    "combine",
    "enable_compilation_cache",
    "enable_x64",
    "estimation",
    "export",
    "fit",
    "list_datasets",
    "load_dataset",
    "read_nonmem",
    "require_x64",
    "simulate",
    "simulate_population",
    "simulate_population_chunks",
    "stack_regimens",
    "units",
]
