"""Third-party web assets, vendored so the project's HTML renders with no network: the
`dvc plots show` page template (Vega inlined) and what Great Expectations' Data Docs load
(fmnist/data/offline_docs.py points the pages at them). `python -m fmnist.web.vendor` refetches
them; README.md beside this file lists versions and licences."""
