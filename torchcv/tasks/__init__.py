from .base import Task, move_to

