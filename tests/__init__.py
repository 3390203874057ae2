"""The test suite, a package: its modules import each other's helpers as `tests.*`, and a
package of this name installed by another distribution (a common packaging slip) must not
shadow it (a folder without this file would lose to it)."""
