"""Posting a gate's result where reviewers work: pull request reviews (GitHub) and merge request discussions."""
