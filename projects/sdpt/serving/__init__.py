"""The prompt bank served on a web page: ``service`` batches the requests
that arrive together into shared forwards of the bank; ``app`` is the Gradio
page; ``load_test`` and ``browser`` exercise it as clients and as a person
in a browser do. ``app``, ``load_test`` and ``browser`` need the optional
``requirements-serve.txt``; ``service`` needs only the core stack, so this
package imports none of them."""
from .service import (
    BankService,
    DetectionRequest,
    DetectionResponse,
    ServiceError,
)

__all__ = ['BankService', 'DetectionRequest', 'DetectionResponse',
           'ServiceError']
