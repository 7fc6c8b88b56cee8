Feature: Machine benchmarking
  A provider's machine is measured (CPU single and multi-core, memory, disk
  write and read, fsync latency) within a time budget, so that jobs can
  ask for capability and bids can be compared. The node keeps the scores
  and dms resources shows them.

  Background:
    Given the node alice is running

  Scenario: dms benchmark measures the machine and the node keeps the scores
    When alice runs `dms benchmark --budget 1s`
    Then the command succeeds
    And the output contains "stored in the running node"
    And alice's node has benchmark scores, each above zero

  Scenario: The first onboarding benchmarks the machine
    Given the node erin is running
    When erin runs `dms onboard --cpu 0.5`
    Then the command succeeds
    And the error says "benchmarking this machine"
    And erin's node has benchmark scores, each above zero

  Scenario: The scores survive a restart
    Given alice has run `dms benchmark --budget 1s`
    And alice's node has benchmark scores, each above zero
    When alice's node restarts
    Then alice's node has the same benchmark scores as before

  Scenario: A budget a node does not accept is a usage error
    When alice runs `dms benchmark --budget 100ms`
    Then it is a usage error saying "a running node takes 1s to 1m"

  Scenario: A machine is measured without a node with --local
    Given dave has a home
    When dave runs `dms benchmark --local --budget 1s`
    Then the command succeeds
    And the output contains "cpu single"
