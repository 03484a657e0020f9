"""cartpk computes in float64 on purpose: cell numbers span 1 to 1e12 and tolerances reach 1e-10.

JAX defaults to float32. cartpk does not switch a global setting behind the user's back on import;
the command line, the tests and the notebooks call :func:`enable_x64` deliberately, and every entry
point checks with :func:`require_x64` so that float32 never enters silently.
"""

import jax

from .errors import CartpkError


def enable_x64() -> None:
    """Switch JAX to 64-bit floats (call once, before creating arrays)."""
    jax.config.update("jax_enable_x64", True)


def require_x64() -> None:
    """Raise a clear error if JAX is still in 32-bit mode."""
    if not jax.config.jax_enable_x64:
        raise CartpkError(
            "cartpk needs float64: call cartpk.enable_x64() (or set JAX_ENABLE_X64=1) "
            "before simulating"
        )
