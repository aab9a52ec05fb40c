"""taskset"""
