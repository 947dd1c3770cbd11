"""The Raft algorithm as a pure state machine: standard library only.

No django, rest_framework, requests, threading, socket or time here; the
runtime feeds in ticks and messages and carries out the returned Ready.
"""
