"""Run every enabled server in one asyncio loop, with Twisted's reactor on it."""
