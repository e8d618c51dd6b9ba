"""Tests of the HTTP API and event stream against real Jupyter and Voila servers."""
