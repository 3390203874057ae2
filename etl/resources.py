"""The names a schema file of an earlier release imports (`from etl.resources import Reference`,
before the stages had folders of their own): a schema an operator copied and edited keeps
loading. New schema files import them from `etl.validate.resources`."""

from etl.validate.resources import Reference, Resource, load

__all__ = ["Reference", "Resource", "load"]
