from tests.pipelines.support import pipes

__all__ = ["pipes"]
