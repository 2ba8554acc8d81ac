"""The read side for users: a Query-service client and the JSON rows ``navigator query`` prints."""
