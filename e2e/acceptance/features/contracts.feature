@pending
Feature: Contracts
  A deployment runs under a contract between its requester and its
  providers: usage is metered per allocation, providers sign receipts for
  the work they ran, and settlement goes through a ledger.

  Scenario: A deployment's usage is metered per allocation
    Given bob offers 1 CPU at a price of 2 per core-hour to alice's deployments
    When alice deploys a task that runs for 2 seconds
    Then the deployment's usage shows the CPU-seconds of the task on bob
    And its cost follows bob's price

  Scenario: A provider signs a receipt for the work it ran
    Given a completed deployment that ran on bob
    When alice asks for its receipts
    Then there is one receipt signed by bob's node for the allocation

  Scenario: A receipt is verified against the provider's key
    Given a receipt from bob
    When alice verifies it
    Then it is valid
    And a copy with a changed amount is refused

  Scenario: A deployment whose price exceeds the requester's limit is not placed
    Given bob offers 1 CPU at a price of 10 per core-hour
    When alice deploys a task with a maximum price of 1
    Then the deployment waits with the reason "price" on bob

  Scenario: Usage is settled through the ledger
    Given a ledger
    And a completed deployment with a receipt
    When the contract settles
    Then the ledger records the transfer from alice to bob
