"""The result an I/O worker returns: a dict whose keys are also attributes."""


class Result(dict):
    """``r["io_count_read"]`` and ``r.io_count_read`` alike, as PyNVMe's results."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value
