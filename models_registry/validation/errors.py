"""The one exception of validation: the model is unusable, and here is why."""


class ModelRejected(Exception):
    """The artifact cannot become a ready version; ``reason`` says what to fix, in a sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
