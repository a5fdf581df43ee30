"""The one exception type users see as a single clear line instead of a traceback."""


class UserError(Exception):
    """A problem with the user's input or environment, with the remedy in the message.

    The CLI prints ``str(error)`` on one line and exits with status 2. Messages say what was
    wrong and what to do, e.g. ``"dataset 'mnsit' is unknown; known: fmnist, mnist"``.
    """


class NonFiniteError(ValueError):
    """An input holds NaN or infinite values (images, latents, codebooks, weights).

    Raised before any computation uses them; training code catches it to report a diverged
    run as such (the epoch and batch where the loss became non-finite).
    """

    @classmethod
    def check(cls, tensor, what: str, remedy: str):
        """``tensor`` unchanged, or this error: ``<what> <k> NaN/infinite value(s); <remedy>``."""
        if tensor.is_floating_point() and tensor.numel():
            # Fast path (one vectorised reduction, ~50x cheaper than counting): a NaN or an
            # infinity anywhere makes the sum NaN or infinite. A finite sum proves every value
            # finite; an infinite one may be overflow of finite values, so then count.
            if bool(tensor.sum().isfinite()):
                return tensor
            bad = int((~tensor.isfinite()).sum())
            if bad:
                raise cls(f"{what} {bad} NaN/infinite value(s); {remedy}")
        return tensor
