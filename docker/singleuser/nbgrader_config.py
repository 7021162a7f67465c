"""nbgrader configuration of the students' servers (single-user image)."""
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "eds"
c.Exchange.root = "/srv/nbgrader/exchange"   # the shared ReadWriteMany volume (see z2jh-values.yaml)
c.Exchange.path_includes_course = False
c.ExchangeFactory.submit = "edsgrade.hub.exchange.PrivateSubmit"
c.ExchangeFactory.fetch_feedback = "edsgrade.exchange.safe.SafeFetchFeedback"
