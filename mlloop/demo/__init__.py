"""`python -m mlloop.demo` (`make demo`): the whole life of a model on the embedded AWS, in a few minutes.

story.py runs the phases against the deployed dev stage, traffic.py calls the model as apps do, report.py
writes the HTML run report, and __main__.py shows the progress and the summary. docs/demo.md tells the story.
"""
