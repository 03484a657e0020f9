"""Read NONMEM-style (and Monolix-style) datasets, validate them and turn them into arrays.

A dataset is a table with one record per row: observations (``EVID=0``), doses (``EVID=1``) and
other events (``EVID=2``). :func:`read_nonmem` reads it from a CSV file, the file's bytes or a
pandas DataFrame, checks every rule below, and returns a :class:`NonmemData` holding the
validated table, one :class:`~cartpk.regimen.Regimen` per subject and the observations as
padded arrays for jitted code (:meth:`NonmemData.to_arrays`). :func:`to_frame` goes back from
arrays (plus model outputs such as ``PRED``) to a long table. Bad data never gets through:
every problem raises one :class:`~cartpk.errors.DatasetError` whose one-line message names the
file, the column and the first offending rows (1-based data rows, the header excluded), and
whose ``column`` and ``rows`` attributes hold the same.

The reader works in stages: parse (text to named cells: encoding, separator, decimal commas,
comment lines, NONMEM's ``IGNORE=@``/``IGNORE=c1``), resolve (column roles, aliases and a
``columns=`` header spec), select (the ``C`` column, ``ignore``/``accept`` conditions), validate
(every rule, each once) and build (the table and the regimens).

Columns (names are case-insensitive):

``ID``, ``TIME``
    Required. Records of one subject must be contiguous and sorted by time; times are >= 0.
    IDs written as integers are compared exactly (``12345678901234567`` and
    ``12345678901234568`` are two subjects); ``1`` and ``1.0`` are the same ID.
``DV``, ``AMT``
    At least one is required; ``DV`` is required unless every observation is censored.
``EVID``, ``MDV``
    Derived NONMEM-style when absent: ``AMT > 0`` makes a dose, any other record is an
    observation (``MDV=0``) or, with ``MDV=1``, an other-type event. An other-type event
    (``EVID=2``) may not carry an amount. ``EVID`` 3 and 4 (resets) are refused: the solver
    cannot reset a subject's state.
``CMT`` (Monolix ``ADM``)
    Compartment of a dose: a positive integer or a name. Defaults to 1 when the column is absent.
``RATE``, ``DUR``
    Zero-order infusion (duration ``AMT/RATE`` or ``DUR``). Modelled rates/durations
    (``RATE=-1``/``-2``) are not supported.
``ADDL``, ``II``
    Additional doses, expanded into single doses every ``II`` after the record.
``CENS`` (or a ``BLQ`` flag), ``LIMIT``, ``LLOQ``
    ``CENS=1``: below the limit, ``-1``: above it. The limit is ``LLOQ`` (NONMEM; ``DV`` is
    then ignored), else ``DV`` (Monolix), else ``LIMIT`` when ``DV`` is empty. A ``LIMIT``
    beside a different ``DV`` is Monolix's other bound of an interval, and is refused.
``DV`` (Monolix ``Y``), ``DVID`` (Monolix ``YTYPE``)
    Observation and integer observation type (1 when absent).
``C``
    A record whose ``C`` is neither empty, ``.`` nor 0 is skipped.
``SS``
    Steady-state dosing is not supported (only ``SS=0`` is accepted).

Every other column is a covariate, constant or time-varying; one holding text is carried as a
text column. In a CSV file an empty field or NONMEM's ``.`` means missing.
"""

from ._data import NonmemData as NonmemData
from ._data import ObservationArrays as ObservationArrays
from ._data import to_frame as to_frame
from ._read import read_nonmem as read_nonmem

__all__ = ["NonmemData", "ObservationArrays", "read_nonmem", "to_frame"]
