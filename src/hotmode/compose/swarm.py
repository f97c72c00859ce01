"""Docker Swarm: the prod configuration as a stack file Swarm honours (placeholder)."""
