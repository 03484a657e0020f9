"""Models out of cartpk: SBML Level 3 and PEtab version 1 (``docs/export.md``).

- :func:`to_sbml`: any model (built-in, combined with therapies, or your own) as an SBML
  document whose rate rules are the model's vector field, traced from its JAX code, with doses
  as SBML events;
- :func:`to_petab`: a fitting problem (model, NONMEM-style dataset, error models, initial and
  fixed values) as a PEtab problem (:class:`PetabProblem`: the SBML model and the tables, whose
  files :class:`~cartpk.commands.ResultsFolder` writes);
- :func:`trace`: the model's equations as sympy expressions (:class:`SymbolicModel`), which both
  exports are written from.

They need the ``sbml`` extra: ``pip install 'cartpk[sbml]'`` (python-libsbml, sympy).
"""

from .petab import PetabProblem as PetabProblem
from .petab import to_petab as to_petab
from .sbml import to_sbml as to_sbml
from .symbolic import SymbolicModel as SymbolicModel
from .symbolic import trace as trace

__all__ = ["PetabProblem", "SymbolicModel", "to_petab", "to_sbml", "trace"]
