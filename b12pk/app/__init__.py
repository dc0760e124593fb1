"""The teaching app (``b12pk app``): a local web page that shows the model's behaviour for
a patient and up to four regimens, with guided lessons from the source articles.

``compute`` turns the page's state into plain data (no web framework); ``server`` serves it
with Starlette and uvicorn (``pip install 'b12pk[app]'``); ``lessons`` reads
``data/lessons.toml``. Educational, not a prescription.
"""
