"""The LLM providers (Gemini, OpenAI-compatible) behind the interface in interface.py, the router with its
fallback and budget, the prompts and the code context they carry.

Uses the base only.
"""
